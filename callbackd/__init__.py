"""The callbackd process, above every layer (api -> daemon -> ami, config below them
all) and the only package that imports them all: the command (`cli`), the composition
root that builds every part of the daemon (`compose`), the loop that runs it (`serve`),
and the operator's checks (`doctor`)."""
