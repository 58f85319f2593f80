from tests.support.webhooks import rest_event, whatsapp_params


def test_whatsapp_message_is_queued(world, lambda_handler):
    item = world.add_conversation()
    world.add_default_secrets()
    response = lambda_handler(rest_event("whatsapp", whatsapp_params()), None)
    assert response["statusCode"] == 200
    assert response["body"] == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert world.sent("whatsapp") == [
        ({"conversation_id": item["conversation_id"], "primary_channel": item["primary_channel"]}, 10)
    ]
