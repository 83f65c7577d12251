"""What every stage's DoFns use while a pipeline runs, below the stages and the run:
`counters.py` (the Beam metric counters), `link.py` (`RunLink`: progress out, cancellation in,
the run's filesystem options), `cancel.py` (the cancel token and its workers' check),
`event_files.py` (progress for runners whose workers are not on the launcher's host),
`faults.py` (fault points the fault tests arm) and `bundles.py` (emitting at a bundle's end).
"""
