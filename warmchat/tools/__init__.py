"""Command-line tools that prepare data for WarmChat's models (motion extraction, training)."""
