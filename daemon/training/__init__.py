"""Retraining: champion/challenger, its policy, the cluster-wide training lock, API training jobs and uploads."""
