"""Ticket work: the pipeline of named stages that takes a parsed message to a committed
outcome, which ticket it joins, the conversation with staff and clients, commands, estimates,
acknowledgements and notices, feedback, allowance alerts and the SLA clock task; erasing
a person (``privacy``) and pruning old raw mail (``retention``)."""
