"""What the agents use on the pool: its index (BM25 + Chroma), the embedder, gap classification, and the
annotate_sample LangChain tool."""
