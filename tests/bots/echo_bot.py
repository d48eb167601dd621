"""A bot written exactly as the whatsapp-chatbot-python README shows, pointed at a Verdigris server.

Run as a subprocess by the tests: ``python echo_bot.py <idInstance> <apiTokenInstance> <url>``.
"""

import sys

from whatsapp_chatbot_python import GreenAPIBot, Notification

id_instance, token, url = sys.argv[1:4]
bot = GreenAPIBot(id_instance, token, host=url, media=url)


@bot.router.message(command="start")
def start_handler(notification: Notification) -> None:
    notification.answer(f"Welcome, {notification.event['senderData']['senderName']}!")


@bot.router.message(text_message="ping")
def ping_handler(notification: Notification) -> None:
    notification.answer("pong", quoted_message_id=notification.event["idMessage"])


@bot.router.message()
def echo_handler(notification: Notification) -> None:
    notification.answer(f"echo: {notification.message_text}")


print("bot ready", flush=True)
bot.run_forever()
