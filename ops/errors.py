"""The one error type of the operator commands: a message for the operator, printed without a traceback."""


class OpsError(Exception):
    pass
