"""The secretary's fixed spoken texts, per language, the same in every mode (turn-based and realtime).

Each is said as is, so its audio comes from the TTS cache after the first call. A domain's `language`
("de", "de-AT") picks its set; a language without one speaks English. The domain's own texts (greeting,
farewell) and the operator's filler (`fallback.filler_text`) are not here: they are configured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prompts:
    still_there: str
    nobody_there: str
    apology: str  # the secretary failed: the caller goes to a colleague
    time_limit: str
    turn_limit: str
    message_taken: str  # followed by the domain's farewell
    leave_message: str  # a brain chose to take a message and said nothing
    resumed: str  # a realtime call that fell back to turns: no second greeting
    operator: str  # a brain chose the operator and said nothing
    putting_through: str  # "{name}"
    not_in_directory: str  # "{name}"
    not_a_choice: str  # keys that are neither an extension of the directory nor "0"
    interrupted: str  # what the history adds to a reply the caller cut off (the brain reads it)
    no_information: str  # the documents don't answer the question: nothing is made up, a way on is offered

    def through_to(self, name: str) -> str:
        return self.putting_through.format(name=name)

    def not_found(self, name: str) -> str:
        return self.not_in_directory.format(name=name)

    def cut_off(self, heard: str) -> str:
        """What the history keeps of a reply the caller cut off after hearing `heard` of it."""
        return f"{heard} {self.interrupted}".strip()


ENGLISH = Prompts(
    still_there="Are you still there?",
    nobody_there="I can't hear anyone, so I'll end the call now. Goodbye!",
    apology="I'm sorry, I'm having trouble right now. Let me put you through to a colleague.",
    time_limit="I'm sorry, we have to end here. Let me put you through to a colleague.",
    turn_limit="Let me put you through to a colleague who can help you further.",
    message_taken="Thank you, I have taken your message.",
    leave_message="Please leave your message after the tone.",
    resumed="Sorry, we were cut off for a moment. How can I help you?",
    operator="Putting you through now.",
    putting_through="Putting you through to {name}.",
    not_in_directory="Sorry, I couldn't find {name} in our directory.",
    not_a_choice="Sorry, that is not a valid choice. How can I help you?",
    interrupted="[interrupted by the caller]",
    no_information="I'm sorry, I don't have that information. I can take a message or put you through to a colleague.",
)

PROMPTS: dict[str, Prompts] = {
    "en": ENGLISH,
    "de": Prompts(
        still_there="Sind Sie noch da?",
        nobody_there="Ich kann niemanden hören, daher beende ich das Gespräch jetzt. Auf Wiederhören!",
        apology="Es tut mir leid, ich habe gerade Schwierigkeiten. Ich verbinde Sie mit einem Kollegen.",
        time_limit="Es tut mir leid, wir müssen hier aufhören. Ich verbinde Sie mit einem Kollegen.",
        turn_limit="Ich verbinde Sie mit einem Kollegen, der Ihnen weiterhelfen kann.",
        message_taken="Vielen Dank, ich habe Ihre Nachricht aufgenommen.",
        leave_message="Bitte hinterlassen Sie Ihre Nachricht nach dem Signalton.",
        resumed="Entschuldigung, wir wurden kurz unterbrochen. Wie kann ich Ihnen helfen?",
        operator="Ich verbinde Sie jetzt.",
        putting_through="Ich verbinde Sie mit {name}.",
        not_in_directory="Entschuldigung, ich habe {name} nicht in unserem Verzeichnis gefunden.",
        not_a_choice="Entschuldigung, das ist keine gültige Auswahl. Wie kann ich Ihnen helfen?",
        interrupted="[vom Anrufer unterbrochen]",
        no_information="Es tut mir leid, diese Information habe ich nicht. Ich kann eine Nachricht aufnehmen oder Sie"
        " mit einem Kollegen verbinden.",
    ),
    "fr": Prompts(
        still_there="Êtes-vous toujours là ?",
        nobody_there="Je n'entends personne, je vais donc mettre fin à l'appel. Au revoir !",
        apology="Je suis désolée, je rencontre un problème. Je vous passe un collègue.",
        time_limit="Je suis désolée, nous devons nous arrêter ici. Je vous passe un collègue.",
        turn_limit="Je vous passe un collègue qui pourra mieux vous aider.",
        message_taken="Merci, j'ai bien pris votre message.",
        leave_message="Veuillez laisser votre message après le signal sonore.",
        resumed="Pardon, nous avons été coupés un instant. Comment puis-je vous aider ?",
        operator="Je vous mets en relation.",
        putting_through="Je vous passe {name}.",
        not_in_directory="Désolée, je ne trouve pas {name} dans notre annuaire.",
        not_a_choice="Désolée, ce choix n'est pas valide. Comment puis-je vous aider ?",
        interrupted="[interrompu par l'appelant]",
        no_information="Je suis désolée, je n'ai pas cette information. Je peux prendre un message ou vous passer un"
        " collègue.",
    ),
    "es": Prompts(
        still_there="¿Sigue ahí?",
        nobody_there="No oigo a nadie, así que voy a terminar la llamada. ¡Adiós!",
        apology="Lo siento, estoy teniendo problemas. Le paso con un compañero.",
        time_limit="Lo siento, tenemos que terminar aquí. Le paso con un compañero.",
        turn_limit="Le paso con un compañero que podrá ayudarle mejor.",
        message_taken="Gracias, he tomado su mensaje.",
        leave_message="Por favor, deje su mensaje después de la señal.",
        resumed="Perdone, se cortó la llamada un momento. ¿En qué puedo ayudarle?",
        operator="Le paso ahora.",
        putting_through="Le paso con {name}.",
        not_in_directory="Lo siento, no encuentro a {name} en nuestro directorio.",
        not_a_choice="Lo siento, esa opción no es válida. ¿En qué puedo ayudarle?",
        interrupted="[interrumpido por el llamante]",
        no_information="Lo siento, no tengo esa información. Puedo tomar un mensaje o pasarle con un compañero.",
    ),
}


def prompts_for(language: str) -> Prompts:
    """The set for a domain's `language` tag; English where there is none for it."""
    return PROMPTS.get(language.split("-", 1)[0].lower(), ENGLISH)
