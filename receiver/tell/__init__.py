"""tell"""
