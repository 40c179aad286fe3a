#!/bin/sh
# test fixture: an executable that the config tests point at
exec sleep 1000
