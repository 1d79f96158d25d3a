"""The UI's session store stays bounded whatever browsers do."""

from clock import Clock

from lightning_ui.sessions import IDLE_TIMEOUT, PENDING_TIMEOUT, SessionStore


def test_signed_in_sessions_last_while_used_pending_sign_ins_expire_sooner() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    signed_in_id, signed_in = store.new()
    signed_in.account_id = "alice-oid"
    pending_id, _pending = store.new()
    clock.now += PENDING_TIMEOUT + 1
    assert store.get(pending_id) is None  # an abandoned sign-in
    assert store.get(signed_in_id) is signed_in
    clock.now += IDLE_TIMEOUT - 1
    assert store.get(signed_in_id) is signed_in  # used in time: the timeout restarts
    clock.now += IDLE_TIMEOUT + 1
    assert store.get(signed_in_id) is None
    assert store.get("made-up") is None
    assert store.get(None) is None


def test_a_flood_of_sign_ins_never_pushes_out_a_signed_in_user() -> None:
    store = SessionStore(max_pending=3, clock=Clock())
    signed_in_id, signed_in = store.new()
    signed_in.account_id = "alice-oid"
    first_pending, _ = store.new()
    for _ in range(10):
        store.new()
    assert len(store) == 4  # alice and the three newest sign-ins in progress
    assert store.get(signed_in_id) is signed_in
    assert store.get(first_pending) is None


def test_expired_sessions_are_dropped_when_new_ones_come() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    for _ in range(5):
        store.new()
    clock.now += PENDING_TIMEOUT + 1
    store.new()
    assert len(store) == 1


def test_rotating_gives_the_session_a_new_id_and_retires_the_old() -> None:
    store = SessionStore(clock=Clock())
    old_id, session = store.new()
    new_id = store.rotate(old_id, session)
    assert new_id != old_id
    assert store.get(old_id) is None
    assert store.get(new_id) is session


def test_an_accounts_tokens_go_with_its_last_session() -> None:
    clock, forgotten = Clock(), list[str]()
    store = SessionStore(clock=clock, on_last_session_gone=forgotten.append)
    laptop_id, laptop = store.new()
    phone_id, phone = store.new()
    laptop.account_id = phone.account_id = "alice-oid"
    store.drop(laptop_id)
    assert forgotten == []  # the phone still uses them
    clock.now += IDLE_TIMEOUT + 1
    assert store.get(phone_id) is None
    assert forgotten == ["alice-oid"]
    pending_id, _ = store.new()
    store.drop(pending_id)
    assert forgotten == ["alice-oid"]  # a sign-in in progress has no tokens
