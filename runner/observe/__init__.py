"""What a worker tells the people who run it: metrics, health, traces, and which build
of the interpreter it is."""
