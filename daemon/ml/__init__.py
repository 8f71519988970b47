"""Machine learning: datasets, training, export, torch-free serving, evaluation and the model store."""
