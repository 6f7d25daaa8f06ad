"""Notifications: a team's channels (e-mail, a signed webhook, Slack, Feishu, DingTalk, WeCom),
the bodies each one takes (formats.py), sending one message to one channel (sending.py), and
telling the channels that want an event (notify.py), from a Celery task per channel and event so
that a slow or failing receiver never holds up a pipeline."""
