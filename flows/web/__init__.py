"""`racemine review`: a local web page to read each fix beside its label and decide on it."""
