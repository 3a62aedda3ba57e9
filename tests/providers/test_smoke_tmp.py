import asyncio, time
import pytest
from tests.providers.conftest import with_providers, spec
from secretary.usage import UsageMeter
from secretary.conversation.conversation import Conversation

async def test_smoke(factory, fake_openai, fake_elevenlabs, fake_deepgram, speech):
    cfg = with_providers(
        stt=[spec("deepgram", fake_deepgram.url)],
        brain=[spec("groq", fake_openai.url)],
        tts=[spec("elevenlabs", fake_elevenlabs.url)],
    )
    usage = UsageMeter()
    pcm = speech.say("I would like to speak to billing please.", 8000)
    t = time.perf_counter()
    tr = await factory.stt(cfg, usage).transcribe(pcm, "en", ["Billing"])
    print("STT", tr, time.perf_counter() - t)
    conv = Conversation(cfg, factory.brain(cfg, usage))
    reply = await conv.respond(tr.text)
    print("REPLY", reply)
    tts = factory.tts(cfg, usage)
    audio = await tts.synthesize(reply.text)
    print("TTS", audio.duration_s, audio.sample_rate, speech.transcribe(audio))
    print(usage.counters)
    cfg2 = with_providers(stt=[spec("openai", fake_openai.url)], brain=[spec("openai", fake_openai.url)], tts=[spec("openai", fake_openai.url)])
    tr = await factory.stt(cfg2, usage).transcribe(pcm, "en", ["Billing"])
    print("STT2", tr)
    reply = await Conversation(cfg2, factory.brain(cfg2, usage)).respond("what are your hours")
    print("REPLY2", reply)
    audio = await factory.tts(cfg2, usage).synthesize(reply.text)
    print("TTS2", audio.duration_s, speech.transcribe(audio))
    print(usage.counters)
