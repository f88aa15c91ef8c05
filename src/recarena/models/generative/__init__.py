"""models/generative"""
