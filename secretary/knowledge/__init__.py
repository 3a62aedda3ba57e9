"""The per-domain knowledge base: documents → passages → vectors in ChromaDB → passages for the brains."""
