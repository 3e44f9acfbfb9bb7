"""The two ways a data file can be wrong.

Both are ValueErrors, so ``except ValueError`` catches every bad-input case;
each message starts with the path of the offending file.
"""

import pickle


class DatasetFormatError(ValueError):
    """A data file is corrupt, truncated or not in the format its name promises.

    Attributes
    ----------
    path: str, the file at fault (also the start of the message).
    """

    def __init__(self, path, problem):
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")


class UnsafePickleError(DatasetFormatError, pickle.UnpicklingError):
    """A pickle asked for something a CIFAR file never needs (e.g. ``os.system``).

    Raised before the request is carried out: nothing the pickle names is
    imported or called.
    """


class ChecksumError(DatasetFormatError):
    """A downloaded or placed file does not have the published checksum."""
