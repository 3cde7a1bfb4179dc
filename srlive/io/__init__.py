"""Reading data that srlive did not write (raw frames from other microscopes' files)."""
