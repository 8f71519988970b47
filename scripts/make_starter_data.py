"""Regenerate daemon/ml/data/starter-tickets.csv: a small, original, freely licensed demo dataset."""

from __future__ import annotations

import csv
import random
from pathlib import Path

QUEUES = {
    "IT Support": (
        [
            "VPN keeps disconnecting",
            "Cannot log in to my laptop",
            "Printer on floor 3 offline",
            "Outlook crashes on start",
            "Password reset needed",
            "Wi-Fi very slow in meeting room",
        ],
        [
            "My VPN client drops the connection every few minutes since the last update.",
            "After changing my password I cannot log in to Windows anymore.",
            "The printer shows offline for everyone and jobs stay in the queue.",
            "Outlook closes immediately after the splash screen, I tried restarting.",
            "I locked myself out of my account after too many attempts.",
            "Video calls freeze because the wireless network is extremely slow.",
        ],
        ["VPN trennt ständig die Verbindung", "Anmeldung am Laptop nicht möglich", "Drucker im 3. Stock offline"],
        [
            "Seit dem Update bricht die VPN-Verbindung alle paar Minuten ab.",
            "Nach der Passwortänderung kann ich mich nicht mehr anmelden.",
            "Der Drucker ist für alle offline und Aufträge bleiben hängen.",
        ],
    ),
    "Billing": (
        [
            "Invoice amount is wrong",
            "Charged twice this month",
            "Need a copy of my invoice",
            "Refund not received",
            "Update billing address",
            "Question about VAT on invoice",
        ],
        [
            "The invoice for October lists 12 licences but we only have 10.",
            "My credit card was charged twice for the same subscription.",
            "Please send me a PDF copy of invoice 2024-0113 for our accounting.",
            "The refund you confirmed two weeks ago has not arrived on our account.",
            "Our company moved, please change the billing address on future invoices.",
            "The invoice does not show VAT separately, our auditor needs it.",
        ],
        ["Rechnungsbetrag ist falsch", "Doppelte Abbuchung", "Rechnungskopie benötigt"],
        [
            "Auf der Rechnung stehen 12 Lizenzen, wir haben aber nur 10.",
            "Die Kreditkarte wurde für dasselbe Abo zweimal belastet.",
            "Bitte senden Sie uns eine Kopie der Rechnung für die Buchhaltung.",
        ],
    ),
    "Sales": (
        [
            "Quote for 50 more seats",
            "Upgrade to enterprise plan",
            "Pricing for non-profits",
            "Demo request",
            "Volume discount question",
            "Trial extension",
        ],
        [
            "We would like a quote for 50 additional user seats starting next quarter.",
            "What does the enterprise plan include and how do we upgrade?",
            "Do you offer special pricing for registered non-profit organisations?",
            "Could we schedule a product demo for our management team next week?",
            "Is there a volume discount if we buy licences for three years?",
            "Our trial ends tomorrow, can it be extended by two weeks for evaluation?",
        ],
        ["Angebot für 50 weitere Lizenzen", "Wechsel auf Enterprise-Tarif", "Produktdemo gewünscht"],
        [
            "Wir möchten ein Angebot für 50 zusätzliche Benutzer ab dem nächsten Quartal.",
            "Was beinhaltet der Enterprise-Tarif und wie können wir wechseln?",
            "Können wir nächste Woche eine Produktdemo für die Geschäftsleitung vereinbaren?",
        ],
    ),
    "HR": (
        [
            "Payslip question",
            "Holiday request not approved",
            "Update bank details for salary",
            "Onboarding documents missing",
            "Parental leave information",
            "Sick note submission",
        ],
        [
            "My payslip for last month shows fewer hours than I worked.",
            "My holiday request from March is still waiting for approval.",
            "Please update my bank account for the next salary payment.",
            "The new colleague starting Monday has not received the contract documents.",
            "Where can I find information about parental leave rules?",
            "How do I submit my sick note when I am working remotely?",
        ],
        ["Frage zur Gehaltsabrechnung", "Urlaubsantrag nicht genehmigt", "Neue Bankverbindung"],
        [
            "Auf meiner Gehaltsabrechnung fehlen Überstunden aus dem letzten Monat.",
            "Mein Urlaubsantrag vom März wurde noch nicht genehmigt.",
            "Bitte ändern Sie meine Bankverbindung für die nächste Gehaltszahlung.",
        ],
    ),
}
PRIORITY_CUES = {
    "high": (
        ["URGENT: ", "Critical: "],
        [" This is urgent, the whole team is blocked.", " Please help as soon as possible, production is affected."],
        [" Dringend, das ganze Team kann nicht arbeiten."],
    ),
    "medium": (
        ["", ""],
        [" Please take a look this week.", " It would be good to fix this soon."],
        [" Bitte diese Woche ansehen."],
    ),
    "low": (
        ["Question: ", "FYI: "],
        [" No rush, whenever you have time.", " Not urgent at all."],
        [" Nicht dringend, wenn Sie Zeit haben."],
    ),
}


def main() -> None:
    """Write 120 tickets: every queue x priority, in English and German."""
    rng = random.Random(7)
    rows = []
    n = 0
    for queue, (subjects, bodies, de_subjects, de_bodies) in QUEUES.items():
        for priority, (prefixes, en_tails, de_tails) in PRIORITY_CUES.items():
            for k in range(10):
                german = k >= 7
                i = rng.randrange(len(de_subjects if german else subjects))
                subject = (de_subjects if german else subjects)[i]
                body = (de_bodies if german else bodies)[i]
                tail = rng.choice(de_tails if german else en_tails)
                prefix = "" if german else rng.choice(prefixes)
                n += 1
                rows.append([f"starter-{n}", prefix + subject, body + tail, queue, priority, "de" if german else "en"])
    rng.shuffle(rows)
    out = Path(__file__).resolve().parent.parent / "daemon" / "ml" / "data" / "starter-tickets.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "subject", "body", "queue", "priority", "language"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
