"""The idle guard: notice that nobody uses a rented server, and stop paying for it.

detect.py decides whether a server is idle, guard.py takes the steps the team chose (each one
run, see pipelines/idle_steps.py), actions.py holds what people do: the settings, "Keep
running" and "Start again".
"""
