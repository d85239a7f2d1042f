"""Errors raised by the annotators; each message names the object and what to do."""


class AnnotatorError(Exception):
    """Base class: labeling or measuring could not go on."""


class LLMError(AnnotatorError):
    """A failure that stops a whole LLM run (bad key, unknown model, rejected request)."""


class LLMNotConfigured(LLMError):
    """No model (or no way to reach one) is configured; nothing was sent."""


class EvalFileError(AnnotatorError):
    """A gold file that cannot be read or has an invalid row."""
