"""How desk addresses people, and whether a writer is one of the client's people.

``greeting_name`` turns a display name into the name a greeting uses ("Dr. Rosa Elm" ->
"Rosa", "SMITH, JOHN" -> "John", "Dr. Elm" -> "Dr. Elm", "Support Team" -> ""); an
empty answer makes the greeting a plain "Hello,", which is always better than "Hello
Dr.," or "Hello Support,". A name the admin gave the contact (``desk client add
--contact "Rosa Elm <rosa@...>"``) wins over whatever the mail's From line says.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from desk.names import greeting_name
from desk.store.deferred import query
from desk.store.directory import of_client
from desk.store.models import Contact, Participant, Staff, Ticket

_CONTACT_NAME = select(Contact.name).where(Contact.email == bindparam("email"))


class LookItUp:
    """``greeting_for``'s default: the caller does not know the contact record."""


LOOK_IT_UP = LookItUp()


def contact_name(session: Session, email: str) -> str:
    """The name the admin gave this address's contact record, or ""."""
    if not email:
        return ""
    # Nothing pending can be a contact's name (the directory is written by the admin's
    # commands): no flush of the batch being ingested for this one read, and the cached
    # statement of the message's path.
    return query(session, _CONTACT_NAME, {"email": email.lower()},
                 sees_deferred=False).scalar() or ""


def greeting_for(session: Session, email: str, display_name: str,
                 contact: Contact | LookItUp | None = LOOK_IT_UP) -> str:
    """The name to greet the person at ``email``: from the contact record when the admin
    gave one (they know the client; a From line may say "ROSA ELM (ACME)" or nothing),
    else from the display name of their mail. ``contact``: the record of ``email`` when
    the caller has it already (None: it has none), saving the query."""
    if isinstance(contact, LookItUp):
        name = contact_name(session, email)
    else:
        name = contact.name if contact is not None else ""
    return greeting_name(name) or greeting_name(display_name)


def is_stranger(session: Session, ticket: Ticket, email: str) -> bool:
    """Is ``email`` none of the ticket's people: not the requester, not a participant,
    not staff, not a contact or an address at a domain of the ticket's client? Such a
    writer reached the ticket by quoting its thread (a forwarded mail answered, a list)."""
    email = email.lower()
    if email == ticket.requester_email.lower():
        return False
    if ticket.client is not None and of_client(session, ticket.client, email):
        return False
    if session.scalar(select(Participant.id).where(Participant.ticket_id == ticket.id,
                                                   Participant.email == email)):
        return False
    # Someone who has left the agency is not our people any more.
    return session.scalar(select(Staff.id).where(Staff.email == email,
                                                 Staff.active.is_(True))) is None
