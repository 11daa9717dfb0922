"""The RPC entrypoint of our services: nameko's, with replies published without confirms.

A reply is transient: if the broker loses it, the caller's timeout answers for it, so waiting
for the broker's confirm of every reply only costs time (measured: about a third of the time a
capture spends in the leads process). Every service uses this `rpc` and not nameko's: the two
would be two consumers of one `rpc-<service>` queue, each not knowing the other's methods.
"""

from __future__ import annotations

from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange


class UnconfirmedPublisher(Publisher):
    use_confirms = False


class ReplyResponder(Responder):
    publisher_cls = UnconfirmedPublisher


class ReplyingRpcConsumer(RpcConsumer):
    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = ReplyResponder(
            config[AMQP_URI_CONFIG_KEY],
            get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class ServiceRpc(Rpc):
    rpc_consumer = ReplyingRpcConsumer()


rpc = ServiceRpc.decorator
