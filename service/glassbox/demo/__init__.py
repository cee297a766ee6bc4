"""The demo: a procedurally generated shapes dataset and the small models trained on it (`models/shapes*`)."""
