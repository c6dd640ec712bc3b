"""Live tests: they need a Docker engine and build and run the real images (marker `live`)."""
