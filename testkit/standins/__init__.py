"""Stand-in servers for FastGPT and One API, the two services that cannot run here.

Standard library only, so they also run with a bare `python3` inside a Debian image:

    python3 -m testkit.standins.oneapi --host 0.0.0.0 --port 3000
    python3 -m testkit.standins.fastgpt --host 0.0.0.0 --port 3000

See README.md beside this file for what each models and what it leaves out.
"""
