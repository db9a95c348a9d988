"""The error a component raises when the data or the settings, not the code, are the problem.

Its message is one paragraph for a person: what is wrong, with the counts and the files
involved, and the fix. The CLI prints it as it is (with the component's name and the log
path) instead of a traceback.
"""


class PipelineInputError(RuntimeError):
    """The run stopped on its input (data, schema, settings); the message names the fix."""
