"""models/recommenders"""
