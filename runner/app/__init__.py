"""The operations people perform on runs, once for every front end.

The CLI parses arguments and renders what these return; the web service,
notifications and the test runner call the same functions:

- start (start.py): check the run store, start or attach, with an in-process worker;
- decide (decide.py): approve, reject or modify a gate, signed when the run asks it;
- control (control.py): pause, resume, concurrency, skip, cancel;
- redrive (redrive.py): run a failed run's failed steps again;
- view, follow (view.py): a run's state, and following it to its end;
- pending (pending.py): every gate waiting and every run in line for a lock;
- locks (locks.py), history (history.py), evidence (evidence.py).

Each takes a Context (context.py) and typed requests, and returns typed results;
what goes wrong is a QlrfError whose message says what to do.
"""
