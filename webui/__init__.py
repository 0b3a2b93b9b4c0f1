"""The Gradio app's parts (no gradio inside warmchat/)."""
