"""facelivenet.server: the verification server (``facelive serve``), its stores and its client."""
