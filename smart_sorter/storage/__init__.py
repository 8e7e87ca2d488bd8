"""Everything written to the destination: placing files safely, the journal, organising a run's
placements, output.csv and the manifest, and the one object for work on a finished destination."""
