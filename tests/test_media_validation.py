"""What Send refuses of media and albums before anything is stored (pure validation)."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask

from notigate.changes import edit_paths
from notigate.validation import validate_send
from notigate_client import pb


def fields(request: pb.SendRequest) -> list[str]:
    return [v.field for v in validate_send(request)]


def photo(**source: str) -> pb.Media:
    return pb.Media(kind=pb.MEDIA_KIND_PHOTO, **source)  # type: ignore[arg-type]


def item(kind: int = pb.MEDIA_KIND_PHOTO, caption: str = "") -> pb.MediaGroupItem:
    return pb.MediaGroupItem(
        media=pb.Media(kind=kind, url="https://example.com/f"),  # type: ignore[arg-type]
        caption=caption,
    )


def test_a_media_message_may_have_no_caption_but_not_a_long_one() -> None:
    assert fields(pb.SendRequest(chat_id="1", media=photo(url="https://e.com/a.jpg"))) == []
    long = pb.SendRequest(chat_id="1", text="x" * 1025, media=photo(url="https://e.com/a.jpg"))
    [violation] = validate_send(long)
    assert violation.field == "text" and "1024" in violation.description
    # Counted after entity parsing, as Telegram counts it.
    bold = pb.SendRequest(
        chat_id="1",
        text="<b>" + "x" * 1024 + "</b>",
        parse_mode=pb.PARSE_MODE_HTML,
        media=photo(url="https://e.com/a.jpg"),
    )
    assert fields(bold) == []


def test_every_media_needs_a_kind_and_exactly_one_good_source() -> None:
    assert fields(pb.SendRequest(chat_id="1", media=pb.Media(url="https://e.com/a"))) == [
        "media.kind"
    ]
    assert fields(pb.SendRequest(chat_id="1", media=photo())) == ["media"]
    assert fields(pb.SendRequest(chat_id="1", media=photo(url="ftp://e.com/a"))) == ["media.url"]
    assert fields(pb.SendRequest(chat_id="1", media=photo(file_id="bad id!"))) == ["media.file_id"]
    assert fields(pb.SendRequest(chat_id="1", media=photo(upload_id="x/y"))) == ["media.upload_id"]
    voice = pb.Media(kind=pb.MEDIA_KIND_VOICE, url="https://e.com/a.ogg", has_spoiler=True)
    assert fields(pb.SendRequest(chat_id="1", media=voice)) == ["media.has_spoiler"]
    named = photo(url="https://e.com/a.jpg")
    named.filename = "../etc/passwd"
    assert fields(pb.SendRequest(chat_id="1", media=named)) == ["media.filename"]


def test_album_rules_are_telegrams() -> None:
    ok = pb.SendRequest(chat_id="-1", media_group=pb.MediaGroup(items=[item(), item()]))
    assert fields(ok) == []
    one = pb.SendRequest(chat_id="-1", media_group=pb.MediaGroup(items=[item()]))
    assert fields(one) == ["media_group.items"]
    eleven = pb.SendRequest(chat_id="-1", media_group=pb.MediaGroup(items=[item()] * 11))
    assert fields(eleven) == ["media_group.items"]
    mixed = pb.SendRequest(
        chat_id="-1", media_group=pb.MediaGroup(items=[item(), item(pb.MEDIA_KIND_DOCUMENT)])
    )
    assert fields(mixed) == ["media_group.items"]
    docs = pb.SendRequest(
        chat_id="-1",
        media_group=pb.MediaGroup(
            items=[item(pb.MEDIA_KIND_DOCUMENT), item(pb.MEDIA_KIND_DOCUMENT)]
        ),
    )
    assert fields(docs) == []
    voices = pb.SendRequest(
        chat_id="-1", media_group=pb.MediaGroup(items=[item(pb.MEDIA_KIND_VOICE), item()])
    )
    assert "media_group.items[0].media.kind" in fields(voices)
    keyboard = pb.InlineKeyboardMarkup(
        rows=[pb.InlineKeyboardRow(buttons=[pb.InlineKeyboardButton(text="a", url="https://a.b")])]
    )
    with_markup = pb.SendRequest(
        chat_id="-1", reply_markup=keyboard, media_group=pb.MediaGroup(items=[item(), item()])
    )
    assert fields(with_markup) == ["reply_markup"]
    with_text = pb.SendRequest(
        chat_id="-1", text="hi", media_group=pb.MediaGroup(items=[item(), item()])
    )
    assert fields(with_text) == ["text"]
    long_caption = pb.SendRequest(
        chat_id="-1", media_group=pb.MediaGroup(items=[item(), item(caption="x" * 1025)])
    )
    assert fields(long_caption) == ["media_group.items[1].caption"]


def test_an_edit_changes_what_its_mask_names_or_else_what_it_sets() -> None:
    assert edit_paths(pb.EditMessageRequest(job_id="1", text="t"))[0] == ["text"]
    paths, problems = edit_paths(
        pb.EditMessageRequest(job_id="1", update_mask=FieldMask(paths=["reply_markup", "chat"]))
    )
    assert paths == ["reply_markup"] and [p.field for p in problems] == ["update_mask"]
    assert edit_paths(pb.EditMessageRequest(job_id="1"))[1]
