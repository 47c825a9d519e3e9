"""Search-service: Weaviate schema, embeddings cache, day sink, quality check."""
