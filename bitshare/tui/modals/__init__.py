"""The console's modal dialogs."""
