'use strict';
// Produce and consume through ali-ons (a pure-JavaScript RocketMQ remoting client) against a
// NameServer given as argv[2]; exits 0 when every message sent came back.
const httpclient = require('urllib');
const { Producer, Consumer, Message } = require('ali-ons');
const nameSrv = process.argv[2];
const topic = 'JsTopic';
const n = Number(process.argv[3] || 20);
const common = { httpclient, nameSrv, accessKeyId: 'ak', accessKeySecret: 'sk', onsChannel: 'LOCAL', pollNameServerInteval: 1000 };

(async () => {
  // Create the topic on the broker TBW102 routes to (this client has no auto-creation fallback).
  const producer = new Producer({ ...common, producerGroup: 'JsProducer' });
  producer.on('error', err => console.error('producer error', err.message));
  await producer.ready();
  const route = await producer._mqClient.getTopicRouteInfoFromNameServer('TBW102', 3000);
  const brokerAddr = route.brokerDatas[0].brokerAddrs['0'];
  await producer._mqClient.createTopic(brokerAddr, 'TBW102', {
    topicName: topic, readQueueNums: 4, writeQueueNums: 4, perm: 6,
    topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false,
  }, 3000);
  console.log(`created ${topic} on ${brokerAddr}`);
  await new Promise(r => setTimeout(r, 500));
  const received = new Set();
  let retried = false;
  const consumer = new Consumer({ ...common, consumerGroup: 'JsGroup', rebalanceInterval: 1000 });
  const done = new Promise(resolve => {
    consumer.subscribe(topic, 'TagA', async msg => {
      const body = msg.body.toString();
      // Fail the first delivery of one message: it must come back through %RETRY%JsGroup.
      if (body === 'm3' && !retried) {
        retried = true;
        console.log(`retry requested for ${body} (reconsume ${msg.reconsumeTimes})`);
        return Consumer.ACTION_RETRY;
      }
      received.add(body);
      console.log(`received ${body} tags=${msg.tags} reconsume=${msg.reconsumeTimes} queue=${msg.queueId}`);
      if (received.size === n) resolve();
    });
  });
  consumer.on('error', err => console.error('consumer error', err.message));
  await consumer.ready();

  for (let i = 0; i < n; i++) {
    const r = await producer.send(new Message(topic, 'TagA', `m${i}`));
    if (r.sendStatus !== 'SEND_OK') throw new Error(`send ${i}: ${JSON.stringify(r)}`);
  }
  // A message with another tag is filtered out by the subscription.
  await producer.send(new Message(topic, 'TagB', 'filtered'));
  console.log(`sent ${n} (+1 filtered)`);
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out with ${received.size}/${n}`)), 60000));
  await Promise.race([done, timeout]);
  if (received.has('filtered')) throw new Error('a TagB message passed a TagA subscription');
  console.log(`all ${n} received, one of them after a retry`);
  await producer.close();
  await consumer.close();
  process.exit(0);
})().catch(err => { console.error('FAILED', err); process.exit(1); });
