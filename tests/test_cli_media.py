"""``notigate send`` with files and albums, ``edit``, ``delete``, and send-file's media
columns, against a running gateway (``main`` runs in a thread, as in test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notigate.app import Gateway
from notigate.simulator import BotApiSimulator
from notigate_client import pb
from notigate_client.cli.batchfile import read_batch_file
from notigate_client.cli.commands import format_job, job_row
from notigate_client.cli.mediasource import classify, guess_kind, parse_album_entry
from tests.conftest import Stub, wait_for, wait_state
from tests.test_cli import cli, target
from tests.test_client_media import PNG, answered


async def get_job(stub: Stub, job_id: str) -> pb.Job:
    return (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).job


# -- how a value names a file (no server) ---------------------------------------------


def test_a_value_is_a_url_a_local_file_or_a_file_id(tmp_path: Path) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(PNG)
    assert classify("https://e.com/a.jpg") == ("url", "https://e.com/a.jpg")
    assert classify(str(png)) == ("path", str(png))
    assert classify("dot.png", base=tmp_path) == ("path", str(png))
    assert classify("AgACAgIAAxkBAAIB") == ("file_id", "AgACAgIAAxkBAAIB")
    with pytest.raises(ValueError, match="no such file"):
        classify(str(tmp_path / "missing.jpg"))
    with pytest.raises(ValueError, match="not a regular file"):
        classify(str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        classify(" ")
    assert guess_kind("clip.mp4") == "video"
    assert guess_kind("https://e.com/song.mp3?x=1") == "audio"
    assert guess_kind("report.pdf") == "document"
    assert guess_kind("AgACAgIAAxkBAAIB") == "photo"
    entry = parse_album_entry("video:AgAC")
    assert (entry.kind, entry.source) == ("video", "AgAC")
    entry = parse_album_entry("https://e.com/a.jpg")
    assert (entry.kind, entry.source) == ("photo", "https://e.com/a.jpg")


def test_jobs_show_their_media_and_kind() -> None:
    photo_job = pb.Job(job_id="1", state=pb.JOB_STATE_WAITING, kind=pb.JOB_KIND_SEND)
    photo_job.request.media.kind = pb.MEDIA_KIND_PHOTO
    photo_job.request.media.url = "https://e.com/a.jpg"
    photo_job.request.text = "A cat"
    shown = " ".join(format_job(photo_job).split())
    assert "media: photo https://e.com/a.jpg" in shown and "caption: A cat" in shown
    assert job_row(photo_job)[-1] == "[photo] A cat"

    album = pb.Job(job_id="2", state=pb.JOB_STATE_COMPLETED, telegram_message_ids=[5, 6])
    for n in (1, 2):
        album.request.media_group.items.add(caption="first" if n == 1 else "").media.file_id = "F"
    shown = " ".join(format_job(album).split())
    assert "telegram ids: 5, 6" in shown and "album 1:" in shown and "text:" not in shown
    assert job_row(album)[-1] == "[album of 2 unspecified] first"

    edit = pb.Job(job_id="3", kind=pb.JOB_KIND_EDIT, target_job_id="1", state=1)
    edit.request.text = "v2"
    assert "kind: edit" in " ".join(format_job(edit).split())
    assert job_row(edit)[-1] == "[edit of 1] v2"
    delete = pb.Job(job_id="4", kind=pb.JOB_KIND_DELETE, target_job_id="1", state=1)
    assert job_row(delete)[-1] == "[delete of 1]"


# -- send -----------------------------------------------------------------------------


async def test_send_a_local_photo_uploads_it_first(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw, stub = gateway
    png = tmp_path / "dot.png"
    png.write_bytes(PNG)
    code, out, err = await cli(
        capsys,
        "send",
        "--target",
        target(gw),
        "--chat",
        "2001",
        "--photo",
        str(png),
        "--text",
        "A dot",
    )
    assert code == 0, err
    assert f"uploaded {png}: {len(PNG)} bytes" in err
    job = await wait_state(stub, out.strip(), pb.JOB_STATE_COMPLETED)
    assert job.request.media.kind == pb.MEDIA_KIND_PHOTO
    assert job.request.media.WhichOneof("source") == "upload_id"
    assert job.request.text == "A dot"
    [message] = simulator.messages_after(chat_id="2001")
    assert message.text == "A dot"

    code, out, _ = await cli(capsys, "job", job.job_id, "--target", target(gw))
    assert code == 0 and "media:" in out and "photo upload" in out and "caption:" in out


async def test_send_by_url_and_by_file_id(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    base = ["send", "--target", target(gw), "--chat", "2002", "--delay", "10m"]
    code, out, err = await cli(capsys, *base, "--photo", "https://e.com/a.jpg", "--spoiler")
    assert code == 0, err
    job = await get_job(stub, out.strip())
    assert job.request.media.url == "https://e.com/a.jpg" and job.request.media.has_spoiler
    assert job.request.text == ""
    code, out, err = await cli(capsys, *base, "--document", "BQACAgIAAxkBAAIC", "--text", "doc")
    assert code == 0, err
    job = await get_job(stub, out.strip())
    assert job.request.media.kind == pb.MEDIA_KIND_DOCUMENT
    assert job.request.media.file_id == "BQACAgIAAxkBAAIC"


async def test_send_usage_errors(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, _ = gateway
    base = ["send", "--target", target(gw), "--chat", "2003"]
    code, out, err = await cli(capsys, *base, "--photo", str(tmp_path / "missing.jpg"))
    assert (code, out) == (2, "") and "no such file" in err
    code, _, err = await cli(capsys, *base)
    assert code == 2 and "--text" in err
    # The server's own checks come back as for any send: a caption too long.
    code, _, err = await cli(capsys, *base, "--photo", "https://e.com/a.jpg", "--text", "x" * 1100)
    assert code == 1 and "INVALID_ARGUMENT" in err and "text" in err


async def test_send_an_album_by_repeated_flags_and_by_album(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw, stub = gateway
    png = tmp_path / "dot.png"
    png.write_bytes(PNG)
    base = ["send", "--target", target(gw), "--chat", "2004", "--delay", "10m"]
    code, out, err = await cli(
        capsys,
        *base,
        "--photo",
        "https://e.com/1.jpg",
        "--photo",
        "https://e.com/2.jpg",
        "--text",
        "Two",
    )
    assert code == 0, err
    job = await get_job(stub, out.strip())
    items = job.request.media_group.items
    assert [i.media.url for i in items] == ["https://e.com/1.jpg", "https://e.com/2.jpg"]
    assert [i.caption for i in items] == ["Two", ""] and job.request.text == ""

    code, out, err = await cli(
        capsys, *base, "--album", str(png), "video:BAACAgIAAxkBAAID", str(png)
    )
    assert code == 0, err
    assert err.count("uploaded") == 1  # the same file twice is uploaded once
    items = (await get_job(stub, out.strip())).request.media_group.items
    assert [i.media.kind for i in items] == [
        pb.MEDIA_KIND_PHOTO,
        pb.MEDIA_KIND_VIDEO,
        pb.MEDIA_KIND_PHOTO,
    ]
    assert items[0].media.upload_id == items[2].media.upload_id != ""

    # Delivered: Telegram gets one sendMediaGroup.
    code, out, err = await cli(
        capsys,
        "send",
        "--target",
        target(gw),
        "--chat",
        "2005",
        "--album",
        "https://e.com/1.jpg",
        "https://e.com/2.jpg",
    )
    assert code == 0, err
    job = await wait_state(stub, out.strip(), pb.JOB_STATE_COMPLETED)
    assert len(job.telegram_message_ids) == 2
    await answered(simulator, "sendMediaGroup")


# -- edit and delete ------------------------------------------------------------------


async def test_edit_and_delete_a_queued_message(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str]
) -> None:
    gw, stub = gateway
    t = ["--target", target(gw)]
    code, out, _ = await cli(
        capsys, "send", *t, "--chat", "2010", "--text", "draft", "--delay", "10m"
    )
    job_id = out.strip()

    code, out, err = await cli(
        capsys, "edit", job_id, *t, "--text", "<b>final</b>", "--parse-mode", "HTML"
    )
    assert code == 0, err
    assert out.strip() == f"job {job_id}: delayed (rewritten before delivery)"
    job = await get_job(stub, job_id)
    assert job.request.text == "<b>final</b>" and job.request.parse_mode == pb.PARSE_MODE_HTML

    code, out, _ = await cli(capsys, "edit", job_id, *t, "--text", "x", "--dry-run")
    assert code == 0 and "nothing was changed" in out
    assert (await get_job(stub, job_id)).request.text == "<b>final</b>"

    code, out, _ = await cli(capsys, "edit", job_id, *t, "--no-preview", "--json")
    assert code == 0 and json.loads(out)["request"]["link_preview"]["is_disabled"] is True

    code, _, err = await cli(capsys, "edit", job_id, *t)
    assert code == 2 and "changes nothing" in err

    code, out, err = await cli(capsys, "delete", job_id, *t, "--dry-run")
    assert code == 0 and "nothing was changed" in out
    code, out, err = await cli(capsys, "delete", job_id, *t)
    assert code == 0, err
    assert out.strip() == f"job {job_id}: cancelled (never sent)"
    code, _, err = await cli(capsys, "delete", job_id, *t)
    assert code == 1 and "FAILED_PRECONDITION" in err


async def test_edit_and_delete_a_delivered_message(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw, stub = gateway
    t = ["--target", target(gw)]
    code, out, _ = await cli(capsys, "send", *t, "--chat", "2011", "--photo", "https://e.com/a.jpg")
    job_id = out.strip()
    sent = await wait_state(stub, job_id, pb.JOB_STATE_COMPLETED)
    before = simulator.message("2011", sent.telegram_message_id)
    assert before is not None and before.kind == "photo"

    png = tmp_path / "new.png"
    png.write_bytes(PNG)
    code, out, err = await cli(capsys, "edit", job_id, *t, "--photo", str(png), "--text", "new")
    assert code == 0, err
    line = out.strip()
    assert line.startswith("edit job ") and line.endswith(f" for job {job_id}: waiting")
    edit_id = line.split()[2]
    edit = await wait_state(stub, edit_id, pb.JOB_STATE_COMPLETED)
    assert edit.kind == pb.JOB_KIND_EDIT and edit.target_job_id == job_id
    await answered(simulator, "editMessageMedia")
    after = simulator.message("2011", sent.telegram_message_id)
    assert after is not None and after.text == "new" and after.file_id != before.file_id

    code, out, err = await cli(capsys, "delete", job_id, *t, "--json")
    assert code == 0, err
    delete = json.loads(out)
    assert delete["kind"] == "JOB_KIND_DELETE" and delete["target_job_id"] == job_id
    await wait_state(stub, delete["job_id"], pb.JOB_STATE_COMPLETED)
    await answered(simulator, "deleteMessage")
    assert simulator.chat_messages("2011") == []

    code, out, _ = await cli(capsys, "jobs", *t)
    assert f"[delete of {job_id}]" in out and f"[edit of {job_id}]" in out


# -- send-file ------------------------------------------------------------------------


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_send_file_with_a_photo_column(
    gateway: tuple[Gateway, Stub],
    simulator: BotApiSimulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw, stub = gateway
    # A file_id is one Telegram gave this bot: the simulator's, for a photo sent before.
    seed = await stub.Send(
        pb.SendRequest(
            chat_id="2019",
            media=pb.Media(kind=pb.MEDIA_KIND_PHOTO, url="https://e.com/0.jpg"),
        )
    )
    await wait_state(stub, seed.job_id, pb.JOB_STATE_COMPLETED)
    [seeded] = simulator.messages_after(chat_id="2019")
    assert seeded.file_id
    after = seeded.seq
    csv_file = _write(
        tmp_path / "photos.csv",
        "chat_id,photo,document,text",
        "2020,https://e.com/1.jpg,,First",
        f"2021,{seeded.file_id},,",
        "2022,,https://e.com/r.pdf,Report",
        "2023,,,just text",
    )
    code, out, err = await cli(capsys, "send-file", str(csv_file), "--target", target(gw))
    assert code == 0, err
    assert "4 messages accepted" in out

    async def delivered() -> bool:
        return len(simulator.messages_after(after)) == 4

    await wait_for(delivered)
    by_chat = {m.chat_id: m for m in simulator.messages_after(after)}
    assert by_chat["2020"].params["photo"] == "https://e.com/1.jpg"
    assert (by_chat["2020"].kind, by_chat["2020"].text) == ("photo", "First")
    assert by_chat["2021"].params["photo"] == seeded.file_id
    assert by_chat["2022"].kind == "document"
    assert by_chat["2022"].params["document"] == "https://e.com/r.pdf"
    assert (by_chat["2023"].kind, by_chat["2023"].text) == ("text", "just text")

    # A rerun finds every row accepted already.
    code, out, _ = await cli(capsys, "send-file", str(csv_file), "--target", target(gw))
    assert code == 0 and "0 new, 4 already accepted" in out
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 5


async def test_send_file_media_problems_name_their_line_and_column(
    gateway: tuple[Gateway, Stub], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gw, stub = gateway
    jsonl = _write(
        tmp_path / "bad.jsonl",
        json.dumps({"chat_id": "1", "photo": "./cat.jpg"}),
        json.dumps({"chat_id": "1", "photo": "https://e.com/a.jpg", "video": "BAAC"}),
        json.dumps({"chat_id": "1", "photo": "https://e.com/a.jpg", "text": "x" * 1100}),
        json.dumps({"chat_id": "1", "voice": "https://e.com/v.ogg", "text": "ok"}),
    )
    code, _, err = await cli(capsys, "send-file", str(jsonl), "--target", target(gw))
    assert code == 1
    assert "line 1: photo: './cat.jpg' is neither an http(s) URL nor a file_id" in err
    assert "line 2: photo: one file per row: video is set too" in err
    # The server's violation of media's caption points at the row's text.
    assert "line 3: text:" in err
    assert "line 4" not in err
    stats = await stub.GetStats(pb.GetStatsRequest())
    assert stats.total_enqueued == 0


def test_batch_file_header_with_media_columns(tmp_path: Path) -> None:
    # Without a file column, text is required as before.
    batch = read_batch_file(_write(tmp_path / "a.csv", "chat_id,photo", "1,https://e.com/a.jpg"))
    assert not batch.problems
    [record] = batch.records
    assert record.request.media.url == "https://e.com/a.jpg" and record.column("media") == "photo"
    batch = read_batch_file(_write(tmp_path / "b.csv", "chat_id", "1"))
    assert [str(p) for p in batch.problems] == [
        "line 1: text: missing column: every message needs one"
    ]
    batch = read_batch_file(_write(tmp_path / "c.csv", "chat_id,photo,photo", "1,a,b"))
    assert "the same column twice" in str(batch.problems[0])
