// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";

/// The gasless test's target: it records who `_msgSender()` says called it.
contract Recipient is ERC2771Context {
    address public lastSender;
    uint256 public calls;

    event Called(address indexed sender, uint256 value);

    constructor(address forwarder) ERC2771Context(forwarder) {}

    function ping() external payable {
        lastSender = _msgSender();
        calls += 1;
        emit Called(_msgSender(), msg.value);
    }
}
