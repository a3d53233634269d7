"""What goes to disk and comes back: the .psz artefact, uploaded models read safely, ONNX export and the
recipe as code."""
