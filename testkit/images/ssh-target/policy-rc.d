#!/bin/sh
# Tells invoke-rc.d that no service may be started or stopped by a package's scripts.
exit 101
