"""Generation tasks: the one pipeline both surfaces run, and the tracker that follows them."""
