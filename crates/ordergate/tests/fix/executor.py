"""A FIX 4.4 acceptor for ordergate's tests: QuickFIX's own acceptor and session
layer (from PyPI), with a small executor application on top.

The executor records every NewOrderSingle it receives (one JSON line each: ClOrdID,
MsgSeqNum, PossDupFlag, PossResend and the order's fields) and dedupes by ClOrdID, as
a real order-management system must (QuickFIX itself does not): the first copy is
acknowledged (ExecType 0, New), or rejected when its symbol starts with "REJECT" (an
ExecutionReport with ExecType 8) or "BIZREJECT" (a BusinessMessageReject);
a later copy of an acknowledged order is refused as a duplicate (ExecType 8,
OrdRejReason 6), a later copy of a rejected one is rejected again. Every logon it
receives is recorded too (MsgSeqNum, ResetSeqNumFlag), and every session logon and
logout (events.jsonl).

Usage: executor.py DIR PORT SENDER TARGET DICTIONARY [DELAY_MS]
DELAY_MS makes it a slow order-management system: it waits that long before it
answers each order (and takes the next one only then).
Writes DIR/orders.jsonl, DIR/logons.jsonl and DIR/events.jsonl; QuickFIX's store is DIR/store. Prints
"ready" once it listens; runs until SIGTERM or SIGKILL.
"""

import json
import os
import signal
import sys
import threading
import time

import quickfix as fix
import quickfix44 as fix44


def optional(message, tag, header=False):
    source = message.getHeader() if header else message
    return source.getField(tag) if source.isSetField(tag) else None


class Executor(fix.Application):
    def __init__(self, directory, delay_ms):
        super().__init__()
        self.delay = delay_ms / 1000.0
        self.lock = threading.Lock()
        self.orders = open(os.path.join(directory, "orders.jsonl"), "a", buffering=1)
        self.logons = open(os.path.join(directory, "logons.jsonl"), "a", buffering=1)
        self.events = open(os.path.join(directory, "events.jsonl"), "a", buffering=1)
        self.answers = {}
        self.exec_id = 0
        path = os.path.join(directory, "orders.jsonl")
        with open(path) as seen:
            for line in seen:
                record = json.loads(line)
                self.answers.setdefault(record["clordid"], record["answer"])

    def onCreate(self, session):
        pass

    def onLogon(self, session):
        self.events.write(json.dumps({"event": "logon"}) + "\n")

    def onLogout(self, session):
        self.events.write(json.dumps({"event": "logout"}) + "\n")

    def toAdmin(self, message, session):
        pass

    def fromAdmin(self, message, session):
        if optional(message, 35, header=True) == "A":
            record = {
                "seq": int(optional(message, 34, header=True)),
                "reset": optional(message, 141),
            }
            self.logons.write(json.dumps(record) + "\n")

    def toApp(self, message, session):
        pass

    def fromApp(self, message, session):
        if optional(message, 35, header=True) != "D":
            return
        with self.lock:
            self.execute(message, session)

    def execute(self, message, session):
        clordid = message.getField(11)
        symbol = message.getField(55)
        first = self.answers.get(clordid)
        if first is None:
            refused = symbol.startswith("REJECT") or symbol.startswith("BIZREJECT")
            answer = "rejected" if refused else "accepted"
            self.answers[clordid] = answer
        else:
            answer = "duplicate" if first == "accepted" else "rejected"
        record = {
            "clordid": clordid,
            "seq": int(optional(message, 34, header=True)),
            "poss_dup": optional(message, 43, header=True),
            "poss_resend": optional(message, 97, header=True),
            "account": optional(message, 1),
            "handl_inst": optional(message, 21),
            "symbol": symbol,
            "side": message.getField(54),
            "quantity": message.getField(38),
            "ord_type": message.getField(40),
            "price": optional(message, 44),
            "time_in_force": optional(message, 59),
            "transact_time": optional(message, 60),
            "answer": first or answer,
            "answered": answer,
        }
        self.orders.write(json.dumps(record) + "\n")
        if self.delay:
            time.sleep(self.delay)
        if answer == "rejected" and symbol.startswith("BIZREJECT"):
            self.business_reject(message, session)
        else:
            self.report(message, session, answer)

    def business_reject(self, message, session):
        reject = fix44.BusinessMessageReject()
        reject.setField(fix.RefSeqNum(int(message.getHeader().getField(34))))
        reject.setField(fix.RefMsgType("D"))
        reject.setField(fix.BusinessRejectRefID(message.getField(11)))
        reject.setField(fix.BusinessRejectReason(6))
        reject.setField(fix.Text("not authorized for " + message.getField(55)))
        fix.Session.sendToTarget(reject, session)

    def report(self, message, session, answer):
        self.exec_id += 1
        exec_type = "0" if answer == "accepted" else "8"
        report = fix44.ExecutionReport()
        for field in (
            fix.OrderID("O-" + message.getField(11)),
            fix.ExecID("E-%d-%d" % (os.getpid(), self.exec_id)),
            fix.ExecType(exec_type),
            fix.OrdStatus(exec_type),
            fix.Side(message.getField(54)),
            fix.LeavesQty(0 if exec_type == "8" else float(message.getField(38))),
            fix.CumQty(0),
            fix.AvgPx(0),
        ):
            report.setField(field)
        report.setField(fix.ClOrdID(message.getField(11)))
        report.setField(fix.Symbol(message.getField(55)))
        if answer == "duplicate":
            report.setField(fix.OrdRejReason(6))
            report.setField(fix.Text("duplicate ClOrdID"))
        elif answer == "rejected":
            report.setField(fix.OrdRejReason(1))
            report.setField(fix.Text("unknown symbol " + message.getField(55)))
        fix.Session.sendToTarget(report, session)


def main():
    directory, port, sender, target, dictionary = sys.argv[1:6]
    delay_ms = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    store = os.path.join(directory, "store")
    os.makedirs(store, exist_ok=True)
    config = os.path.join(directory, "acceptor.cfg")
    with open(config, "w") as out:
        out.write(
            "[DEFAULT]\n"
            "ConnectionType=acceptor\n"
            "SocketReuseAddress=Y\n"
            f"SocketAcceptPort={port}\n"
            f"FileStorePath={store}\n"
            f"FileLogPath={os.path.join(directory, 'log')}\n"
            "StartTime=00:00:00\nEndTime=00:00:00\n"
            "UseDataDictionary=Y\n"
            f"DataDictionary={dictionary}\n"
            "ResetOnLogon=N\nResetOnLogout=N\nResetOnDisconnect=N\n"
            "[SESSION]\n"
            "BeginString=FIX.4.4\n"
            f"SenderCompID={sender}\n"
            f"TargetCompID={target}\n"
        )
    settings = fix.SessionSettings(config)
    application = Executor(directory, delay_ms)
    acceptor = fix.SocketAcceptor(
        application,
        fix.FileStoreFactory(settings),
        settings,
        fix.FileLogFactory(settings),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    acceptor.start()
    print("ready", flush=True)
    stop.wait()
    acceptor.stop()


if __name__ == "__main__":
    main()
