"""Scheduling and cover-style policies sharing stable-baselines3's ``predict`` signature."""
