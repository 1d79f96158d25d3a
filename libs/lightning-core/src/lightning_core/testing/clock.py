"""A clock the test moves by hand, for code that takes a `clock` (time.monotonic's shape)."""


class Clock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
