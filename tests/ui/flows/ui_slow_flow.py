import os
import time

from metaflow import FlowSpec, step


class UiSlowFlow(FlowSpec):
    """A run that stays in progress until the file $UI_SLOW_RELEASE exists (at most 10 minutes)."""

    @step
    def start(self):
        self.next(self.wait)

    @step
    def wait(self):
        print("waiting to be released")
        deadline = time.time() + 600
        while (
            not os.path.exists(os.environ.get("UI_SLOW_RELEASE", "/nonexistent")) and time.time() < deadline
        ):
            time.sleep(0.5)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UiSlowFlow()
