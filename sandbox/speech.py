"""What the simulated people say, in the languages Wavix transcribes (en, de, es, fr, it).

A conversation alternates an agent (the account's side) and a client; each line is a turn whose start
and end (`s`, `e`, ms from answer) fit inside the call's duration. Summaries are in the call's language,
as Wavix writes them. Text is plain ASCII-safe Unicode, so no encoding issue hides behind a test.
"""

from __future__ import annotations

import random

LANGUAGES = ("en", "de", "es", "fr", "it")

AGENT: dict[str, tuple[str, ...]] = {
    "en": ("Hello, how can I help you?", "Let me check your account.", "I have updated the order for you.",
           "Is there anything else I can do?", "Thank you for calling, goodbye."),
    "de": ("Guten Tag, wie kann ich Ihnen helfen?", "Ich sehe mir Ihr Konto an.",
           "Ich habe die Bestellung angepasst.", "Kann ich sonst noch etwas tun?", "Danke fuer Ihren Anruf."),
    "es": ("Hola, ¿en qué puedo ayudarle?", "Voy a revisar su cuenta.", "He actualizado su pedido.",
           "¿Puedo ayudarle en algo más?", "Gracias por llamar, adiós."),
    "fr": ("Bonjour, comment puis-je vous aider ?", "Je vérifie votre compte.", "J'ai mis à jour votre commande.",
           "Puis-je faire autre chose pour vous ?", "Merci de votre appel, au revoir."),
    "it": ("Buongiorno, come posso aiutarla?", "Controllo il suo account.", "Ho aggiornato il suo ordine.",
           "Posso fare altro per lei?", "Grazie per la chiamata, arrivederci."),
}

CLIENT: dict[str, tuple[str, ...]] = {
    "en": ("Hi, I have a question about my bill.", "My delivery has not arrived yet.",
           "That is not what I ordered.", "Great, thank you very much.", "No, that is all."),
    "de": ("Hallo, ich habe eine Frage zu meiner Rechnung.", "Meine Lieferung ist noch nicht da.",
           "Das habe ich nicht bestellt.", "Super, vielen Dank.", "Nein, das war alles."),
    "es": ("Hola, tengo una pregunta sobre mi factura.", "Mi pedido todavía no ha llegado.",
           "Eso no es lo que pedí.", "Perfecto, muchas gracias.", "No, eso es todo."),
    "fr": ("Bonjour, j'ai une question sur ma facture.", "Ma livraison n'est pas encore arrivée.",
           "Ce n'est pas ce que j'ai commandé.", "Parfait, merci beaucoup.", "Non, c'est tout."),
    "it": ("Salve, ho una domanda sulla mia bolletta.", "La mia consegna non è ancora arrivata.",
           "Non è quello che ho ordinato.", "Perfetto, grazie mille.", "No, è tutto."),
}

SUMMARIES: dict[str, tuple[str, ...]] = {
    "en": ("The client asked about a bill; the agent explained the charges.",
           "The client reported a late delivery; the agent updated the order."),
    "de": ("Der Kunde fragte nach einer Rechnung; der Agent erklaerte die Kosten.",
           "Der Kunde meldete eine verspaetete Lieferung; der Agent passte die Bestellung an."),
    "es": ("El cliente preguntó por una factura; el agente explicó los cargos.",
           "El cliente informó de un retraso; el agente actualizó el pedido."),
    "fr": ("Le client a posé une question sur sa facture ; l'agent a expliqué les frais.",
           "Le client a signalé un retard de livraison ; l'agent a mis à jour la commande."),
    "it": ("Il cliente ha chiesto della bolletta; l'agente ha spiegato i costi.",
           "Il cliente ha segnalato un ritardo; l'agente ha aggiornato l'ordine."),
}

SENTIMENTS = ("neutral", "positive", "negative")


def conversation(rng: random.Random, language: str, duration_s: int) -> list[tuple[bool, int, int, str]]:
    """Turns as `(agent_speaks, start_ms, end_ms, text)`, alternating speakers, all inside the call."""
    span_ms = max(duration_s, 1) * 1000
    count = max(2, min(8, duration_s // 8))
    slot = span_ms // count
    turns = []
    for i in range(count):
        agent = i % 2 == 0
        lines = AGENT[language] if agent else CLIENT[language]
        start = i * slot + rng.randrange(0, max(1, slot // 5))
        end = min(span_ms, start + max(1, slot - rng.randrange(0, max(1, slot // 4))))
        turns.append((agent, start, end, lines[min(i // 2, len(lines) - 1)] if i < 2 else rng.choice(lines)))
    return turns


def summary(rng: random.Random, language: str) -> str:
    return rng.choice(SUMMARIES[language])
