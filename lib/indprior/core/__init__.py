"""What every experiment needs and no experiment knows about: configs, files, runtime, the training loop."""
