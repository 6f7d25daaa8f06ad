"""Live container logs: `docker logs --follow` over SSH, split into lines a browser can show.

lines.py turns the bytes of `docker logs --timestamps` into lines; source.py starts the remote
command; hub.py shares one remote stream per container between every viewer of it; polls.py
serves the browsers that poll from that same stream.
"""
