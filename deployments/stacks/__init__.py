"""The FastGPT + One API + Xinference stack: version lines, secrets, and the rendered files."""
