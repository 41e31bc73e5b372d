"""What `make demo` leaves to people, so the README's operations guide has work to do and never races the demo.

- Kommune 147 (Frederiksberg) is "you, the kommune system": its tasks go to its inbox (not pushed to the
  simulator), it gets one application in ten so tasks arrive every half minute or so, and the simulator answers
  them only after a demo-year (about six real minutes). Until then they wait, get their reminders, go overdue and
  are escalated, and a person has minutes to answer, ask, extend or return one. A late answer rather than none keeps
  the demo's load bounded: at about 300 applications a demo-week, some 17 of 147's tasks are open at any time, each
  escalated every 30 s (the `demo-1` policy's "weekly") once overdue, well under one escalation a second in all.
- Kommune 101 (København)'s cases are left for people to decide: the demo caseworkers decide every other case, so
  a person deciding a 101 case never races them. They stay ready for decision until someone decides them.
"""

from __future__ import annotations

from typing import Final

YOUR_KOMMUNE: Final = "147"
YOUR_KOMMUNE_NAME: Final = "Frederiksberg"
YOUR_KOMMUNE_SHARE: Final = 0.1
YOUR_KOMMUNE_ANSWERS_AFTER_DAYS: Final = 365

LEFT_FOR_PEOPLE: Final = "101"
LEFT_FOR_PEOPLE_NAME: Final = "København"
