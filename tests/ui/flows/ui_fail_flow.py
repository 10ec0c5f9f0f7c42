from metaflow import FlowSpec, step


class UiFailFlow(FlowSpec):
    """A run that fails in its middle step."""

    @step
    def start(self):
        self.next(self.boom)

    @step
    def boom(self):
        raise RuntimeError("this run fails on purpose")
        self.next(self.end)  # noqa

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UiFailFlow()
