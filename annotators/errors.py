"""Errors raised by the annotators; each message names the object and what to do."""


class AnnotatorError(Exception):
    """Base class: labeling or measuring could not go on."""


class LLMError(AnnotatorError):
    """A failure that stops a whole LLM run (bad key, unknown model, rejected request)."""


class EvalFileError(AnnotatorError):
    """A gold file that cannot be read or has an invalid row."""
